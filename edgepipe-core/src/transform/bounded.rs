//! A map with a bound on its size, for per-series state in stateful transforms.
//!
//! Two generations: lookups hit the young one, then the old one (promoting the
//! entry). When the young generation holds half the capacity, the old one is
//! discarded and the young one becomes old. That is an O(1) approximation of
//! least-recently-used eviction, with at most `capacity` entries held. Forgetting
//! a series is always safe for the transforms that use this: a deadband forwards
//! the next reading, a dedup window lets a very old duplicate through.

use std::borrow::Borrow;
use std::collections::HashMap;
use std::hash::Hash;

#[derive(Debug)]
pub(crate) struct BoundedMap<K, V> {
    young: HashMap<K, V>,
    old: HashMap<K, V>,
    generation_size: usize,
}

impl<K: Hash + Eq, V> BoundedMap<K, V> {
    /// A map holding at most `capacity` entries (at least 2).
    pub(crate) fn new(capacity: usize) -> Self {
        BoundedMap {
            young: HashMap::new(),
            old: HashMap::new(),
            generation_size: (capacity / 2).max(1),
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.young.len() + self.old.len()
    }

    /// The entry for `key`, promoted to the young generation, if it is held.
    pub(crate) fn get_mut<Q>(&mut self, key: &Q) -> Option<&mut V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        if !self.young.contains_key(key) {
            let (owned_key, value) = self.old.remove_entry(key)?;
            self.insert_young(owned_key, value);
        }
        self.young.get_mut(key)
    }

    /// Inserts or replaces `key`.
    pub(crate) fn insert(&mut self, key: K, value: V) {
        self.old.remove(&key);
        self.insert_young(key, value);
    }

    fn insert_young(&mut self, key: K, value: V) {
        if self.young.len() >= self.generation_size && !self.young.contains_key(&key) {
            self.old = std::mem::take(&mut self.young);
        }
        self.young.insert(key, value);
    }
}

/// Writes an unambiguous key for one series into `out`: each part but the last is
/// prefixed by its length, so no choice of ids can make two series collide.
pub(crate) fn series_key(out: &mut String, device_id: &str, data_type: &str, field: &str) {
    let mut digits = itoa::Buffer::new();
    out.clear();
    out.push_str(digits.format(device_id.len()));
    out.push(':');
    out.push_str(device_id);
    out.push_str(digits.format(data_type.len()));
    out.push(':');
    out.push_str(data_type);
    out.push_str(field);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn holds_at_most_its_capacity_and_keeps_recently_used_entries() {
        let mut map = BoundedMap::new(4);
        for key in 0..100 {
            map.insert(key, key);
            assert!(map.len() <= 4);
            // Touching key 0 every round keeps it alive.
            if key > 0 {
                assert_eq!(map.get_mut(&0).copied(), Some(0));
            }
        }
        assert_eq!(map.get_mut(&99).copied(), Some(99));
        assert_eq!(map.get_mut(&50), None);
    }
}
