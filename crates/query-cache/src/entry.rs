//! What the cache stores for a key, and why a stored entry may no longer be served.

use std::any::Any;
use std::sync::Arc;

use tokio::time::Instant;

use crate::tags::{TagStamp, all_current};

/// A type-erased shared value.
pub(crate) type AnyArc = Arc<dyn Any + Send + Sync>;

/// A stored value with everything needed to decide, without other locks, whether it may
/// be served.
pub(crate) struct Entry {
    pub(crate) value: AnyArc,
    pub(crate) type_name: &'static str,
    pub(crate) fresh_until: Instant,
    /// `fresh_until` plus the stale-while-revalidate grace.
    pub(crate) stale_until: Instant,
    /// Generations of the entry's tags when its load started.
    pub(crate) tags: Box<[TagStamp]>,
    pub(crate) weight: usize,
    /// Unique within the shard; tells this entry from a later one under the same key. 0 until
    /// the shard stores the entry and gives it its id.
    pub(crate) id: u64,
    /// The key's hash: where the entry sits in its shard's table, and its frequency in
    /// the admission sketch.
    pub(crate) hash: u64,
}

/// Why an entry may not be served any more.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Dead {
    Invalidated,
    Expired,
}

impl Entry {
    #[inline]
    pub(crate) fn dead(&self, now: Instant) -> Option<Dead> {
        if !all_current(&self.tags) {
            Some(Dead::Invalidated)
        } else if now >= self.stale_until {
            Some(Dead::Expired)
        } else {
            None
        }
    }
}
