//! Eviction and admission: which entries a full shard keeps.
//!
//! This is the room to change eviction in. A shard hands its entries to a [`Policy`] and
//! only does the bookkeeping the policy knows nothing of (weights, tags, counters,
//! single flight); the policy decides where an entry sits, what a hit promotes and which
//! entries leave when the shard is full.
//!
//! - [`table`]: the storage every policy builds on, a hash table of entries that also
//!   sit on a few intrusive LRU lists (one hash per lookup, no allocation per move);
//! - [`lru`]: plain LRU ([`Admission::Always`](crate::Admission::Always));
//! - [`tiny_lfu`]: W-TinyLFU ([`Admission::TinyLfu`](crate::Admission::TinyLfu), the
//!   default), which uses the two cache-wide parts below through [`CacheWide`];
//! - [`sketch`]: the frequency sketch, one for the whole cache;
//! - [`window`]: the admission window's size for the whole cache, climbing towards the
//!   best hit ratio on shadow hits, and the shadows and ghosts that remember the keys that
//!   left a shard.
//!
//! Everything that depends on the traffic (frequencies, the window size) is kept for the
//! cache as a whole, not per shard, so the hit ratio does not depend on the shard count
//! (which by default follows the core count).

mod lru;
mod sketch;
mod table;
mod tiny_lfu;
mod window;

#[cfg(test)]
mod tests;

use tokio::time::Instant;

use crate::CacheKey;
use crate::entry::Entry;

pub(crate) use lru::Lru;
pub(crate) use tiny_lfu::{CacheWide, WTinyLfu};
pub(crate) use window::WindowSizing;

/// Entries taken out of a policy, for the shard's bookkeeping.
pub(crate) type Removed = Vec<(CacheKey, Entry)>;

/// Where a shard's entries live and which leave when it is full.
///
/// Every method runs under the shard's lock. `hash` is the key's hash, computed once per
/// call by the cache; a policy never hashes a key itself.
pub(crate) trait Policy: Send {
    /// Number of entries held.
    fn len(&self) -> usize;

    /// A lookup of `key` by a caller: recorded as an access (hit or miss) and, if the key
    /// is present, promoted.
    fn access(&mut self, key: &str, hash: u64) -> Option<&Entry>;

    /// The entry for `key`, without recording an access or promoting it.
    fn peek(&self, key: &str, hash: u64) -> Option<&Entry>;

    /// Replaces the entry of a present `key` in place (it keeps its place and
    /// promotion): returns the old entry, or gives `entry` back if `key` is absent.
    fn replace(&mut self, key: &str, entry: Entry) -> Result<Entry, Entry>;

    /// Adds an entry for an absent key. Entries that leave to make room (possibly this
    /// one, if it is not admitted) are pushed to `removed`; `now` lets the policy prefer
    /// entries that may no longer be served.
    fn insert(&mut self, key: CacheKey, entry: Entry, now: Instant, removed: &mut Removed);

    /// Removes `key`'s entry.
    fn remove(&mut self, key: &str, hash: u64) -> Option<(CacheKey, Entry)>;

    /// Removes and returns the entry that should leave first, other than `keep`'s (used
    /// to enforce the weight bound).
    fn pop_victim(&mut self, keep: &str) -> Option<(CacheKey, Entry)>;

    /// Removes every entry for which `keep` returns false, into `removed`.
    fn retain(&mut self, keep: &mut dyn FnMut(&CacheKey, &Entry) -> bool, removed: &mut Removed);
}

/// The policy a shard uses: an enum rather than a `Box<dyn Policy>` so that the hit path
/// is inlined into the shard's lookup instead of going through a virtual call.
// One per shard, inside the shard's lock: boxing the larger variant would only add a
// pointer to chase on every hit.
#[allow(clippy::large_enum_variant)]
pub(crate) enum ShardPolicy {
    Lru(Lru),
    WTinyLfu(WTinyLfu),
}

/// Calls `$method` on whichever policy the shard uses.
macro_rules! delegate {
    ($self:ident, $policy:ident => $call:expr) => {
        match $self {
            ShardPolicy::Lru($policy) => $call,
            ShardPolicy::WTinyLfu($policy) => $call,
        }
    };
}

impl Policy for ShardPolicy {
    #[inline]
    fn len(&self) -> usize {
        delegate!(self, p => p.len())
    }

    #[inline]
    fn access(&mut self, key: &str, hash: u64) -> Option<&Entry> {
        delegate!(self, p => p.access(key, hash))
    }

    #[inline]
    fn peek(&self, key: &str, hash: u64) -> Option<&Entry> {
        delegate!(self, p => p.peek(key, hash))
    }

    fn replace(&mut self, key: &str, entry: Entry) -> Result<Entry, Entry> {
        delegate!(self, p => p.replace(key, entry))
    }

    fn insert(&mut self, key: CacheKey, entry: Entry, now: Instant, removed: &mut Removed) {
        delegate!(self, p => p.insert(key, entry, now, removed))
    }

    fn remove(&mut self, key: &str, hash: u64) -> Option<(CacheKey, Entry)> {
        delegate!(self, p => p.remove(key, hash))
    }

    fn pop_victim(&mut self, keep: &str) -> Option<(CacheKey, Entry)> {
        delegate!(self, p => p.pop_victim(keep))
    }

    fn retain(&mut self, keep: &mut dyn FnMut(&CacheKey, &Entry) -> bool, removed: &mut Removed) {
        delegate!(self, p => p.retain(keep, removed))
    }
}

/// `share` of `total` split over `parts` so that the shares add up exactly to `total`
/// (the first `total % parts` parts get one more).
pub(crate) fn share(total: usize, part: usize, parts: usize) -> usize {
    total / parts + usize::from(part < total % parts)
}

/// Whether `now` is before `entry` may no longer be served: victims that may not be
/// served any more leave without a contest.
#[inline]
fn servable(entry: &Entry, now: Instant) -> bool {
    entry.dead(now).is_none()
}
