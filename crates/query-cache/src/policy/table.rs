//! The storage every policy builds on: a hash table of entries whose nodes also sit on
//! one of `LISTS` intrusive LRU lists.
//!
//! Nodes live in one `Vec` and link to each other by index, so moving an entry to the
//! most recently used end of a list, or from one list to another, touches a few integers
//! and never allocates. The hash table stores node indices and finds them with the hash
//! the cache computed once for the key: a lookup hashes nothing. A removed node's slot is
//! filled by the last node (`swap_remove`), whose links and table slot are repointed.

use hashbrown::HashTable;

use super::Removed;
use crate::CacheKey;
use crate::entry::Entry;

const NIL: u32 = u32::MAX;

struct Node {
    key: CacheKey,
    entry: Entry,
    /// Towards the least recently used end of its list.
    older: u32,
    /// Towards the most recently used end.
    newer: u32,
    list: u8,
}

#[derive(Debug, Clone, Copy)]
struct Ends {
    oldest: u32,
    newest: u32,
    len: usize,
}

const EMPTY: Ends = Ends {
    oldest: NIL,
    newest: NIL,
    len: 0,
};

pub(crate) struct Table<const LISTS: usize> {
    index: HashTable<u32>,
    nodes: Vec<Node>,
    lists: [Ends; LISTS],
}

/// The table's hash. Shards are chosen by the high half of the key's hash, so within a
/// shard those bits hardly vary; multiplying by an odd constant spreads the varying low
/// bits into the high bits hashbrown uses for its tags.
#[inline]
fn spread(hash: u64) -> u64 {
    hash.wrapping_mul(0x9e37_79b9_7f4a_7c15)
}

impl<const LISTS: usize> Table<LISTS> {
    pub(crate) fn new() -> Self {
        Table {
            index: HashTable::new(),
            nodes: Vec::new(),
            lists: [EMPTY; LISTS],
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.nodes.len()
    }

    pub(crate) fn list_len(&self, list: usize) -> usize {
        self.lists[list].len
    }

    #[inline]
    pub(crate) fn find(&self, key: &str, hash: u64) -> Option<u32> {
        let nodes = &self.nodes;
        self.index
            .find(spread(hash), |&i| nodes[i as usize].key.as_str() == key)
            .copied()
    }

    #[inline]
    pub(crate) fn entry(&self, i: u32) -> &Entry {
        &self.nodes[i as usize].entry
    }

    /// The entry under `key`, without touching its recency.
    pub(crate) fn get(&self, key: &str, hash: u64) -> Option<&Entry> {
        self.find(key, hash).map(|i| self.entry(i))
    }

    /// Puts `entry` in place of the one under its key, which becomes the newest of its list,
    /// and returns the old one; gives `entry` back when the key is absent.
    pub(crate) fn replace(&mut self, key: &str, entry: Entry) -> Result<Entry, Entry> {
        match self.find(key, entry.hash) {
            Some(i) => {
                self.make_newest(i, self.list_of(i));
                Ok(std::mem::replace(&mut self.nodes[i as usize].entry, entry))
            }
            None => Err(entry),
        }
    }

    /// Removes the entry under `key`.
    pub(crate) fn remove_key(&mut self, key: &str, hash: u64) -> Option<(CacheKey, Entry)> {
        let i = self.find(key, hash)?;
        Some(self.remove(i))
    }

    pub(crate) fn key(&self, i: u32) -> &CacheKey {
        &self.nodes[i as usize].key
    }

    #[inline]
    pub(crate) fn list_of(&self, i: u32) -> usize {
        usize::from(self.nodes[i as usize].list)
    }

    /// The least recently used node of `list`.
    pub(crate) fn oldest(&self, list: usize) -> Option<u32> {
        let i = self.lists[list].oldest;
        (i != NIL).then_some(i)
    }

    /// The node after `i` towards the most recently used end of its list.
    pub(crate) fn newer(&self, i: u32) -> Option<u32> {
        let next = self.nodes[i as usize].newer;
        (next != NIL).then_some(next)
    }

    /// Adds a node for an absent key at the most recently used end of `list`.
    pub(crate) fn push(&mut self, key: CacheKey, entry: Entry, list: usize) -> u32 {
        let i = u32::try_from(self.nodes.len()).unwrap_or(NIL - 1);
        let hash = entry.hash;
        self.nodes.push(Node {
            key,
            entry,
            older: NIL,
            newer: NIL,
            list: 0,
        });
        let nodes = &self.nodes;
        self.index
            .insert_unique(spread(hash), i, |&j| spread(nodes[j as usize].entry.hash));
        self.link_newest(i, list);
        i
    }

    /// Moves node `i` to the most recently used end of `list` (its own or another).
    #[inline]
    pub(crate) fn make_newest(&mut self, i: u32, list: usize) {
        if self.lists[list].newest == i {
            return;
        }
        self.unlink(i);
        self.link_newest(i, list);
    }

    /// Removes node `i`. Invalidates the index of the last node (it moves to `i`).
    pub(crate) fn remove(&mut self, i: u32) -> (CacheKey, Entry) {
        self.unlink(i);
        let hash = self.nodes[i as usize].entry.hash;
        if let Ok(slot) = self.index.find_entry(spread(hash), |&j| j == i) {
            slot.remove();
        }
        let last = u32::try_from(self.nodes.len() - 1).unwrap_or(NIL);
        let node = self.nodes.swap_remove(i as usize);
        if i != last {
            let (older, newer, list, moved_hash) = {
                let moved = &self.nodes[i as usize];
                (moved.older, moved.newer, moved.list, moved.entry.hash)
            };
            if let Some(slot) = self.index.find_mut(spread(moved_hash), |&j| j == last) {
                *slot = i;
            }
            // The moved node's neighbours follow it to `i`.
            self.relink(usize::from(list), older, newer, i, i);
        }
        (node.key, node.entry)
    }

    /// Removes every node for which `keep` returns false, into `removed`.
    pub(crate) fn retain(
        &mut self,
        keep: &mut dyn FnMut(&CacheKey, &Entry) -> bool,
        removed: &mut Removed,
    ) {
        // From the end: a removal moves the last node, which was already looked at.
        let mut i = self.nodes.len();
        while i > 0 {
            i -= 1;
            let node = &self.nodes[i];
            if !keep(&node.key, &node.entry) {
                removed.push(self.remove(i as u32));
            }
        }
    }

    fn unlink(&mut self, i: u32) {
        let (older, newer, list) = {
            let node = &self.nodes[i as usize];
            (node.older, node.newer, usize::from(node.list))
        };
        self.relink(list, older, newer, newer, older);
        self.lists[list].len -= 1;
    }

    /// Points the neighbours `older` and `newer` of a place in `list` elsewhere: `older`'s
    /// newer link (the list's oldest end when `older` is NIL) at `after_older`, and `newer`'s
    /// older link (the newest end when `newer` is NIL) at `before_newer`.
    #[inline]
    fn relink(&mut self, list: usize, older: u32, newer: u32, after_older: u32, before_newer: u32) {
        let ends = &mut self.lists[list];
        match older {
            NIL => ends.oldest = after_older,
            older => self.nodes[older as usize].newer = after_older,
        }
        match newer {
            NIL => ends.newest = before_newer,
            newer => self.nodes[newer as usize].older = before_newer,
        }
    }

    fn link_newest(&mut self, i: u32, list: usize) {
        let ends = &mut self.lists[list];
        let previous = ends.newest;
        ends.newest = i;
        ends.len += 1;
        match previous {
            NIL => ends.oldest = i,
            previous => self.nodes[previous as usize].newer = i,
        }
        let node = &mut self.nodes[i as usize];
        node.older = previous;
        node.newer = NIL;
        node.list = list as u8;
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use tokio::time::Instant;

    use super::*;

    fn entry(hash: u64) -> Entry {
        let now = Instant::now();
        Entry {
            value: Arc::new(hash),
            type_name: "u64",
            fresh_until: now,
            stale_until: now,
            tags: Box::default(),
            weight: 0,
            id: hash,
            hash,
        }
    }

    fn keys_from_oldest<const L: usize>(table: &Table<L>, list: usize) -> Vec<String> {
        let mut keys = Vec::new();
        let mut next = table.oldest(list);
        while let Some(i) = next {
            keys.push(table.key(i).to_string());
            next = table.newer(i);
        }
        keys
    }

    /// Removals move the last node into the freed slot: every key must still be found,
    /// and every list keep its order, whatever was removed.
    #[test]
    fn removals_keep_the_index_and_the_lists_consistent() {
        let mut table = Table::<2>::new();
        for i in 0..10_u64 {
            // Colliding hashes on purpose: the key decides.
            table.push(
                CacheKey::from(format!("k{i}")),
                entry(i % 3),
                (i % 2) as usize,
            );
        }
        let k3 = table.find("k3", 0).unwrap();
        table.make_newest(k3, 0);
        for key in ["k0", "k9", "k4"] {
            let hash = key[1..].parse::<u64>().unwrap() % 3;
            let i = table.find(key, hash).unwrap();
            assert_eq!(table.remove(i).0.as_str(), key);
        }
        assert_eq!(keys_from_oldest(&table, 0), ["k2", "k6", "k8", "k3"]);
        assert_eq!(keys_from_oldest(&table, 1), ["k1", "k5", "k7"]);
        assert_eq!(
            (table.list_len(0), table.list_len(1), table.len()),
            (4, 3, 7)
        );
        for i in [1, 2, 3, 5, 6, 7, 8_u64] {
            let key = format!("k{i}");
            let found = table.find(&key, i % 3).unwrap();
            assert_eq!(table.key(found).as_str(), key);
        }
        assert!(table.find("k4", 1).is_none());
        let mut removed = Vec::new();
        table.retain(&mut |key, _| key.as_str() > "k5", &mut removed);
        assert_eq!(removed.len(), 4);
        assert_eq!(keys_from_oldest(&table, 0), ["k6", "k8"]);
        assert_eq!(keys_from_oldest(&table, 1), ["k7"]);
    }
}
