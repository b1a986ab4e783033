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
    capacity: usize,
}

impl<K: Hash + Eq, V> BoundedMap<K, V> {
    /// A map holding at most `capacity` entries (at least 2).
    pub(crate) fn new(capacity: usize) -> Self {
        BoundedMap {
            young: HashMap::new(),
            old: HashMap::new(),
            capacity: capacity.max(2),
        }
    }

    /// The bound on entries held.
    #[cfg(test)]
    pub(crate) fn capacity(&self) -> usize {
        self.capacity
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
        if self.young.len() >= self.capacity / 2 && !self.young.contains_key(&key) {
            self.old = std::mem::take(&mut self.young);
        }
        self.young.insert(key, value);
    }
}

/// Per-series state of a transform, one entry per `(device_id, data_type,
/// field)`, bounded like [`BoundedMap`]. Keys are built in a reused buffer, so a
/// lookup allocates nothing; only a new series allocates its key.
#[derive(Debug)]
pub(crate) struct SeriesMap<V> {
    map: BoundedMap<String, V>,
    key: String,
}

impl<V> SeriesMap<V> {
    /// At most `capacity` series (at least 2).
    pub(crate) fn new(capacity: usize) -> Self {
        SeriesMap {
            map: BoundedMap::new(capacity),
            key: String::new(),
        }
    }

    /// The bound on series held.
    #[cfg(test)]
    pub(crate) fn capacity(&self) -> usize {
        self.map.capacity()
    }

    /// Series held now.
    pub(crate) fn len(&self) -> usize {
        self.map.len()
    }

    /// The state of one series, if it is held.
    pub(crate) fn get_mut(
        &mut self,
        device_id: &str,
        data_type: &str,
        field: &str,
    ) -> Option<&mut V> {
        series_key(&mut self.key, device_id, data_type, field);
        self.map.get_mut(self.key.as_str())
    }

    /// The state of one series, made by `fresh` when it is not held. `None` only
    /// if the entry vanished between insert and lookup, which the map never does;
    /// callers treat it as "no state" rather than panic.
    pub(crate) fn get_or_insert_with(
        &mut self,
        device_id: &str,
        data_type: &str,
        field: &str,
        fresh: impl FnOnce() -> V,
    ) -> Option<&mut V> {
        series_key(&mut self.key, device_id, data_type, field);
        if self.map.get_mut(self.key.as_str()).is_none() {
            self.map.insert(self.key.clone(), fresh());
        }
        self.map.get_mut(self.key.as_str())
    }
}

/// Writes an unambiguous key for one series into `out`: each part but the last is
/// prefixed by its length, so no choice of ids can make two series collide.
fn series_key(out: &mut String, device_id: &str, data_type: &str, field: &str) {
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
