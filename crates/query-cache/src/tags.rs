//! Tags: per-tag generation counters (for correctness) and member sets (for eager removal).
//!
//! Invalidating a tag bumps its generation. Every entry and every running load carries
//! the generations of its tags as they were when its load *started*; one that sees a
//! newer generation is invalid. That makes tag invalidation O(1) for correctness and
//! immune to the race where a load that read old data finishes after the invalidation.
//! The member sets only let `invalidate_tag` free the memory of the affected entries at
//! once instead of waiting for lookups or sweeps.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use parking_lot::{Mutex, RwLock};

use crate::CacheKey;

/// One tag's state. Entries and loads hold an `Arc` to it, so a tag that nothing refers
/// to any more can be dropped from the registry without losing a generation that matters.
#[derive(Debug)]
pub(crate) struct TagCell {
    generation: AtomicU64,
    /// `(key, entry id)` of the stored entries that carry this tag.
    ///
    /// Lock order: a shard lock may be held while taking this lock, never the reverse.
    members: Mutex<HashSet<(CacheKey, u64), foldhash::fast::RandomState>>,
}

impl TagCell {
    pub(crate) fn add_member(&self, key: &CacheKey, id: u64) {
        self.members.lock().insert((key.clone(), id));
    }

    pub(crate) fn remove_member(&self, key: &CacheKey, id: u64) {
        self.members.lock().remove(&(key.clone(), id));
    }
}

/// A tag and its generation at the moment a load started.
#[derive(Debug, Clone)]
pub(crate) struct TagStamp {
    cell: Arc<TagCell>,
    generation: u64,
}

impl TagStamp {
    /// Whether the tag has not been invalidated since this stamp was taken.
    #[inline]
    pub(crate) fn is_current(&self) -> bool {
        self.cell.generation.load(Ordering::Acquire) == self.generation
    }

    pub(crate) fn cell(&self) -> &TagCell {
        &self.cell
    }
}

/// Whether every stamp is current.
#[inline]
pub(crate) fn all_current(stamps: &[TagStamp]) -> bool {
    stamps.iter().all(TagStamp::is_current)
}

/// All known tags by name.
#[derive(Debug)]
pub(crate) struct TagRegistry {
    tags: RwLock<HashMap<Arc<str>, Arc<TagCell>, foldhash::fast::RandomState>>,
    /// Registry size at which creating a tag first forgets the unused ones, so that tags
    /// built from ever-changing values (dates, ids) cannot grow the registry without bound
    /// even if nobody calls `sweep`. Doubles with the live size: amortised O(1) per tag.
    collect_at: AtomicUsize,
}

impl Default for TagRegistry {
    fn default() -> Self {
        TagRegistry {
            tags: RwLock::default(),
            collect_at: AtomicUsize::new(MIN_COLLECT_AT),
        }
    }
}

const MIN_COLLECT_AT: usize = 1024;

impl TagRegistry {
    /// Stamps for `names` (duplicates removed), creating unknown tags at generation 0.
    pub(crate) fn stamp(&self, names: &[&str]) -> Box<[TagStamp]> {
        if names.is_empty() {
            return Box::default();
        }
        let mut stamps: Vec<TagStamp> = Vec::with_capacity(names.len());
        let mut missing: Vec<&str> = Vec::new();
        {
            let tags = self.tags.read();
            for (i, name) in names.iter().enumerate() {
                if names[..i].contains(name) {
                    continue;
                }
                match tags.get(*name) {
                    Some(cell) => stamps.push(stamp_of(cell)),
                    None => missing.push(name),
                }
            }
        }
        if !missing.is_empty() {
            let mut tags = self.tags.write();
            if tags.len() + missing.len() > self.collect_at.load(Ordering::Relaxed) {
                // The stamps taken above hold their cells, so those are kept.
                retain_used(&mut tags);
                self.collect_at
                    .store((2 * tags.len()).max(MIN_COLLECT_AT), Ordering::Relaxed);
            }
            for name in missing {
                let cell = tags.entry(Arc::from(name)).or_insert_with(|| {
                    Arc::new(TagCell {
                        generation: AtomicU64::new(0),
                        members: Mutex::default(),
                    })
                });
                stamps.push(stamp_of(cell));
            }
        }
        stamps.into_boxed_slice()
    }

    /// Bumps the tag's generation and returns the members to remove eagerly.
    ///
    /// Returns nothing for a tag never used: no entry or load can carry it.
    pub(crate) fn invalidate(&self, name: &str) -> Vec<(CacheKey, u64)> {
        let Some(cell) = self.tags.read().get(name).cloned() else {
            return Vec::new();
        };
        // The bump comes first: from here on no lookup serves, and no load stores, a
        // value stamped with the old generation, whatever the member set says.
        cell.generation.fetch_add(1, Ordering::AcqRel);
        cell.members.lock().drain().collect()
    }

    /// Forgets tags that no entry or load refers to. Their generation no longer matters:
    /// a future load stamps the recreated tag afresh.
    pub(crate) fn collect_unused(&self) {
        retain_used(&mut self.tags.write());
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.tags.read().len()
    }
}

fn retain_used(tags: &mut HashMap<Arc<str>, Arc<TagCell>, foldhash::fast::RandomState>) {
    tags.retain(|_, cell| Arc::strong_count(cell) > 1 || !cell.members.lock().is_empty());
}

fn stamp_of(cell: &Arc<TagCell>) -> TagStamp {
    TagStamp {
        cell: Arc::clone(cell),
        generation: cell.generation.load(Ordering::Acquire),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invalidation_makes_earlier_stamps_stale() {
        let registry = TagRegistry::default();
        let before = registry.stamp(&["a", "b", "a"]);
        assert_eq!(before.len(), 2, "duplicate tags are stamped once");
        assert!(all_current(&before));
        registry.invalidate("b");
        assert!(!all_current(&before));
        assert!(all_current(&registry.stamp(&["a", "b"])));
    }

    #[test]
    fn the_registry_forgets_unused_tags_by_itself() {
        let registry = TagRegistry::default();
        let kept = registry.stamp(&["kept"]);
        for day in 0..10_000 {
            drop(registry.stamp(&[&format!("date:{day}")]));
        }
        assert!(
            registry.len() <= MIN_COLLECT_AT + 1,
            "{} tags held",
            registry.len()
        );
        assert!(all_current(&kept));
        assert!(registry.tags.read().contains_key("kept"));
    }

    #[test]
    fn unused_tags_are_collected_but_referenced_ones_kept() {
        let registry = TagRegistry::default();
        let kept = registry.stamp(&["kept"]);
        drop(registry.stamp(&["dropped"]));
        registry.collect_unused();
        assert_eq!(registry.len(), 1);
        assert!(all_current(&kept));
    }
}
